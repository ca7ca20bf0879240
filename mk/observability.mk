# Observability: the service's metrics, the chart's ServiceMonitor, PrometheusRule and Grafana
# dashboard, checked with real tools (tests/observability):
#   make prometheus-tools   install prometheus + promtool (Debian's prometheus package) when missing
#   make check-observability  promtool check/test rules on the rendered rules, the CRD schemas,
#                             the dashboard's queries, and a real Prometheus scraping `movierec serve`

TEST_DEPS += prometheus-tools

.PHONY: prometheus-tools check-observability

prometheus-tools: ## install prometheus and promtool (Debian's prometheus package) when missing
	@bash tools/install-prometheus.sh

check-observability: install k8s-tools prometheus-tools ## the monitoring checks alone: rules, alerts firing in a real Prometheus, dashboard
	$(VENV)/bin/pytest -q -rs tests/observability

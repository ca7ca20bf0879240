# The web page in a real browser: headless Chromium from Debian's `chromium` package,
# driven by Playwright (the pip package; no browser download), against the real service on ml-1m.
#   make browser-tools   install /usr/bin/chromium with apt-get when it is missing
#   make test-browser    the browser tests alone (tests/browser); writes docs/screenshot.png

TEST_DEPS += browser-tools

.PHONY: browser-tools test-browser

browser-tools: ## install headless Chromium (Debian's chromium package) when it is missing
	@bash tools/install-browser.sh

test-browser: install browser-tools ## the web page in headless Chromium against the real service; saves docs/screenshot.png
	$(VENV)/bin/pytest -q -rs tests/browser

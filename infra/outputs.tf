# What deploy.sh (and a person) needs after `terraform apply`. No secret is output here:
# the kubeconfig and the bootstrap commands are written to 0600/0700 files instead.

output "kubeconfig_path" {
  description = "Path of the kubeconfig file (mode 0600) for the new cluster: export KUBECONFIG=<this>."
  value       = local_sensitive_file.kubeconfig.filename
}

output "kubernetes_cluster_id" {
  description = "OVHcloud Managed Kubernetes cluster id."
  value       = ovh_cloud_project_kube.movierec.id
}

output "qdrant_mode" {
  description = "hybrid or self-hosted, as applied."
  value       = var.qdrant_mode
}

output "qdrant_namespace" {
  description = "Namespace of Qdrant inside the cluster."
  value       = var.qdrant_namespace
}

output "qdrant_url" {
  description = "In-cluster URL of Qdrant for the movierec chart (qdrant.url). Hybrid: the operator's Service qdrant-<cluster id>; self-hosted: the official chart's Service of release qdrant. null until the hybrid cluster exists."
  value = (
    local.hybrid
    ? (local.create_qdrant_cluster ? "http://qdrant-${qdrant-cloud_accounts_cluster.movierec[0].id}.${var.qdrant_namespace}.svc:6333" : null)
    : "http://qdrant.${var.qdrant_namespace}.svc:6333"
  )
}

output "qdrant_cluster_id" {
  description = "Qdrant Cloud id of the Hybrid Cloud cluster (null in self-hosted mode)."
  value       = local.create_qdrant_cluster ? qdrant-cloud_accounts_cluster.movierec[0].id : null
}

output "hybrid_environment_id" {
  description = "Qdrant Hybrid Cloud environment id (null in self-hosted mode)."
  value       = local.hybrid ? qdrant-cloud_accounts_hybrid_cloud_environment.movierec[0].id : null
}

output "hybrid_bootstrap_script_path" {
  description = "Script (mode 0700) with the environment's bootstrap commands; deploy.sh runs it once with KUBECONFIG set. null in self-hosted mode."
  value       = one(local_sensitive_file.hybrid_bootstrap[*].filename)
}

output "qdrant_snapshots_s3_env_path" {
  description = "Self-hosted mode: file (mode 0600) with the snapshot bucket, region, endpoint and S3 credential; deploy.sh makes Secret qdrant-snapshots-s3 of it. null in hybrid mode."
  value       = one(local_sensitive_file.qdrant_snapshots_s3[*].filename)
}

output "movierec_qdrant_settings" {
  description = "Chart values qdrant.shards / replicationFactor / writeConsistency for the movierec ingest (\"\" = the default)."
  value = {
    shards            = var.qdrant_shards == null ? "" : tostring(var.qdrant_shards)
    replicationFactor = tostring(var.qdrant_replication_factor)
    writeConsistency  = tostring(var.qdrant_write_consistency)
  }
}

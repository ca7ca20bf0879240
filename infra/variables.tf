# Inputs of the OVHcloud stack. scripts/deploy.sh sets the ones marked "set by deploy.sh";
# the rest have defaults sized for MovieLens-1M and can be overridden in terraform.tfvars
# (see terraform.tfvars.example) or with -var.

# --- OVHcloud Managed Kubernetes -----------------------------------------------------------

variable "ovh_endpoint" {
  description = "OVHcloud API endpoint: ovh-eu, ovh-ca or ovh-us (must match where the API credentials were created)."
  type        = string
  default     = "ovh-eu"

  validation {
    condition     = contains(["ovh-eu", "ovh-ca", "ovh-us"], var.ovh_endpoint)
    error_message = "ovh_endpoint must be one of ovh-eu, ovh-ca, ovh-us."
  }
}

variable "ovh_project_id" {
  description = "OVHcloud Public Cloud project id (the 32-character service name). Set by deploy.sh from OVH_CLOUD_PROJECT_SERVICE."
  type        = string

  validation {
    condition     = length(trimspace(var.ovh_project_id)) > 0
    error_message = "ovh_project_id must not be empty: export OVH_CLOUD_PROJECT_SERVICE."
  }
}

variable "region" {
  description = "OVHcloud Public Cloud region of the Kubernetes cluster, e.g. GRA11, SBG5, BHS5, DE1, UK1, WAW1."
  type        = string
  default     = "GRA11"
}

variable "cluster_name" {
  description = "Name of the Managed Kubernetes cluster (also the prefix of the node pool and of the Qdrant names)."
  type        = string
  default     = "movierec"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.cluster_name))
    error_message = "cluster_name: 3-32 characters, lower-case letters, digits and '-' (node pool names reject '_')."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the cluster, e.g. \"1.34\". null takes the newest version OVHcloud offers; pin it for repeatable deploys (OVHcloud supports the three newest minors)."
  type        = string
  default     = null

  validation {
    condition     = var.kubernetes_version == null || can(regex("^1\\.[0-9]+$", var.kubernetes_version))
    error_message = "kubernetes_version must look like \"1.34\" (or be null)."
  }
}

variable "kube_plan" {
  description = "MKS plan: free (shared control plane, no SLA) or standard (dedicated control plane, SLA, billed)."
  type        = string
  default     = "free"

  validation {
    condition     = contains(["free", "standard"], var.kube_plan)
    error_message = "kube_plan must be free or standard."
  }
}

variable "node_flavor" {
  description = "Public Cloud flavor of the worker nodes. b3-8 = 2 vCPU / 8 GB RAM; the Hybrid Cloud agent and operator, Qdrant, the service and the ingest Job fit on two of them for MovieLens-1M."
  type        = string
  default     = "b3-8"
}

variable "node_count" {
  description = "Number of worker nodes in the node pool (fixed size, no autoscaling). 3: each of the 3 Qdrant nodes gets a node of its own, so losing one Kubernetes node loses one copy of a shard, never both."
  type        = number
  default     = 3

  validation {
    condition     = var.node_count >= 1 && var.node_count <= 100
    error_message = "node_count must be between 1 and 100."
  }
}

variable "kubeconfig_path" {
  description = "Where to write the cluster's kubeconfig (file mode 0600, directory 0700). null = infra/.generated/kubeconfig. Set by deploy.sh."
  type        = string
  default     = null
}

# --- Qdrant ----------------------------------------------------------------------------------

variable "qdrant_mode" {
  description = "hybrid: Qdrant Hybrid Cloud environment + cluster created through Qdrant Cloud; self-hosted: only the Kubernetes cluster here, deploy.sh installs the official Qdrant Helm chart on it. Set by deploy.sh from QDRANT_MODE."
  type        = string
  default     = "hybrid"

  validation {
    condition     = contains(["hybrid", "self-hosted"], var.qdrant_mode)
    error_message = "qdrant_mode must be hybrid or self-hosted."
  }
}

variable "qdrant_cluster_enabled" {
  description = "Create the Qdrant cluster in the Hybrid Cloud environment. deploy.sh applies false first (the environment must be bootstrapped into Kubernetes and the API-key Secret must exist before a cluster can start), then true."
  type        = bool
  default     = true
}

variable "qdrant_namespace" {
  description = "Kubernetes namespace of Qdrant: the Hybrid Cloud agent, operator and database (hybrid), or the official chart's release (self-hosted). Cannot change after bootstrap."
  type        = string
  default     = "qdrant"
}

variable "hybrid_environment_name" {
  description = "Name of the Qdrant Hybrid Cloud environment."
  type        = string
  default     = "movierec-ovh"
}

variable "storage_class" {
  description = "StorageClass for the Qdrant database and snapshot volumes (OVHcloud MKS default: csi-cinder-high-speed)."
  type        = string
  default     = "csi-cinder-high-speed"
}

variable "volume_snapshot_class" {
  description = "VolumeSnapshotClass for Qdrant backups of volumes attached to running pods. OVHcloud MKS documents csi-cinder-snapclass-in-use-v1 (force-create) for in-use Cinder volumes; csi-cinder-snapclass-v1 is for detached ones, and Qdrant's default csi-snapclass does not exist there."
  type        = string
  default     = "csi-cinder-snapclass-in-use-v1"
}

variable "qdrant_cluster_name" {
  description = "Name of the Qdrant database cluster in Qdrant Cloud."
  type        = string
  default     = "movierec"
}

variable "qdrant_nodes" {
  description = "Number of Qdrant nodes of the Hybrid Cloud cluster. 3 with replication factor 2: every shard has copies on two nodes, spread one node per Kubernetes node, so the loss of any one node leaves every collection readable."
  type        = number
  default     = 3

  validation {
    condition     = var.qdrant_nodes >= 1 && var.qdrant_nodes <= 10
    error_message = "qdrant_nodes must be between 1 and 10."
  }
}

variable "qdrant_cpu" {
  description = "CPU of each Qdrant node, as Qdrant Cloud packages spell it (e.g. 500m, 1000m, 2000m). Selects the Hybrid Cloud package together with qdrant_ram."
  type        = string
  default     = "1000m"
}

variable "qdrant_ram" {
  description = "RAM of each Qdrant node, as Qdrant Cloud packages spell it (e.g. 2Gi, 4Gi, 8Gi)."
  type        = string
  default     = "4Gi"
}

variable "qdrant_package_id" {
  description = "Qdrant Cloud package id to use instead of looking one up by qdrant_cpu / qdrant_ram (null = look up)."
  type        = string
  default     = null
}

variable "qdrant_additional_disk_gi" {
  description = "Extra disk per Qdrant node beyond the package's own, in GiB (0 = none)."
  type        = number
  default     = 0

  validation {
    condition     = var.qdrant_additional_disk_gi >= 0
    error_message = "qdrant_additional_disk_gi must not be negative."
  }
}

variable "qdrant_version" {
  description = "Qdrant version of the Hybrid Cloud cluster, e.g. v1.19.0 (null = Qdrant Cloud's current default)."
  type        = string
  default     = null
}

variable "qdrant_api_key_secret" {
  description = "Name of the Secret (in qdrant_namespace and in the app namespace, created by deploy.sh) holding the read-write and the read-only key. Must match the chart value qdrant.existingSecret."
  type        = string
  default     = "qdrant-api-key"
}

variable "qdrant_api_key_field" {
  description = "Key of the read-write API key inside that Secret (chart value qdrant.apiKeyKey)."
  type        = string
  default     = "api-key"
}

variable "qdrant_read_only_api_key_field" {
  description = "Key of the read-only API key inside that Secret (chart value qdrant.readOnlyApiKeyKey)."
  type        = string
  default     = "read-only-api-key"
}

# --- Replication, rollback and backups ------------------------------------------------------

variable "qdrant_shards" {
  description = "Shards per collection the movierec ingest creates (QDRANT_SHARDS, chart value qdrant.shards). null: one shard per Qdrant node, Qdrant's default."
  type        = number
  default     = null

  validation {
    condition     = var.qdrant_shards == null || try(var.qdrant_shards >= 1, false)
    error_message = "qdrant_shards must be at least 1 (or null)."
  }
}

variable "qdrant_replication_factor" {
  description = "Copies of each shard: the Hybrid cluster's default for new collections, and what the movierec ingest asks for (QDRANT_REPLICATION_FACTOR). 2 survives the loss of one node; the ingest refuses more copies than nodes."
  type        = number
  default     = 2

  # At most qdrant_nodes: checked by a precondition of the cluster (Terraform 1.7 validations
  # may not read other variables).
  validation {
    condition     = var.qdrant_replication_factor >= 1
    error_message = "qdrant_replication_factor must be at least 1."
  }
}

variable "qdrant_write_consistency" {
  description = "Copies that must confirm a write (QDRANT_WRITE_CONSISTENCY and the cluster's default write_consistency_factor). 1 keeps writes possible while one node is down; the ingest verifies its counts before switching a version in."
  type        = number
  default     = 1

  validation {
    condition     = var.qdrant_write_consistency >= 1
    error_message = "qdrant_write_consistency must be at least 1."
  }
}

variable "qdrant_backup_schedule" {
  description = "Cron expression (UTC) of the Hybrid Cloud backup schedule: volume snapshots of every Qdrant node, taken by the operator with volume_snapshot_class."
  type        = string
  default     = "0 3 * * *"
}

variable "qdrant_backup_retention" {
  description = "How long each Hybrid Cloud backup is kept, as a Go duration (168h = 7 days)."
  type        = string
  default     = "168h"

  validation {
    condition     = can(regex("^[0-9]+h$", var.qdrant_backup_retention))
    error_message = "qdrant_backup_retention must be a number of hours, e.g. 168h."
  }
}

variable "snapshot_bucket_region" {
  description = "Self-hosted mode: OVHcloud Object Storage region of the bucket Qdrant writes its snapshots to (Qdrant's snapshots_config), e.g. GRA, SBG, BHS, DE, UK, WAW."
  type        = string
  default     = "GRA"
}

variable "app_namespace" {
  description = "Namespace of the movierec workloads: the only application pods the Qdrant operator's network policy lets reach 6333/6334."
  type        = string
  default     = "movierec"
}

variable "monitoring_namespace" {
  description = "Namespace of the Prometheus that scrapes Qdrant's /metrics on 6333; admitted by the Qdrant operator's network policy."
  type        = string
  default     = "monitoring"
}

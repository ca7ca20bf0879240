# Pinned versions for the OVHcloud + Qdrant Hybrid Cloud stack. Upgrade deliberately:
# change a pin, run `terraform init -upgrade`, read the provider's changelog, commit the lock file.
terraform {
  required_version = ">= 1.7.0"

  required_providers {
    ovh = {
      source  = "ovh/ovh"
      version = "2.19.0"
    }
    qdrant-cloud = {
      source  = "qdrant/qdrant-cloud"
      version = "1.28.0"
    }
    local = {
      source  = "hashicorp/local"
      version = "2.9.0"
    }
  }
}

# Credentials never live in these files: the ovh provider reads OVH_APPLICATION_KEY,
# OVH_APPLICATION_SECRET, OVH_CONSUMER_KEY (or OVH_CLIENT_ID / OVH_CLIENT_SECRET) from the
# environment, the qdrant-cloud provider reads QDRANT_CLOUD_API_KEY and QDRANT_CLOUD_ACCOUNT_ID.
provider "ovh" {
  endpoint = var.ovh_endpoint
}

provider "qdrant-cloud" {}

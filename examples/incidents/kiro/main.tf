# The production environment of a cost-reporting service, as its engineers left it.
# terraform_data is terraform's built-in resource: real resources in a real state, applied by the real
# terraform, with no cloud provider to download (there is no cloud account here).

variable "platform_version" { default = "2025.11" } # changing it forces a replacement, like an image or engine version
variable "owner_tag" { default = "cost-team" }      # changing it is an in-place update

resource "terraform_data" "environment" {
  input            = { name = "cost-explorer-prod", region = "cn-north-1", owner = var.owner_tag }
  triggers_replace = [var.platform_version]
}

resource "terraform_data" "database" {
  input = { name = "cost-explorer-prod-db", region = "cn-north-1" }
}

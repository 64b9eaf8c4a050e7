// The Key Vault for what cannot be an identity: the Partner Center app's secret and the Teams
// Workflows webhook URL (the whole URL is the secret). The app reads them through Key Vault
// references in its settings, with its user-assigned identity (Key Vault Secrets User, rbac.bicep).
// A secret is created only when its value is given; the app setting that refers to it likewise
// (function-app.bicep), since an unresolved reference stops the app at start.

@description('Name of the Key Vault (3-24 characters).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags of every resource.')
param tags object

@description('The Teams Workflows webhook URL; empty: no secret (no Teams posts).')
@secure()
param teamsWebhookUrl string = ''

@description('The Partner Center app\'s client secret; empty: no secret (Partner Center not used).')
@secure()
param partnerCenterClientSecret string = ''

var teamsWebhookSecretName = 'teams-webhook-url'
var partnerCenterSecretName = 'partner-center-client-secret'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: the Function app resolves its Key Vault references over the public endpoint (no VNet integration in this template); only Entra-signed callers with an RBAC role can read
  // checkov:skip=CKV_AZURE_189: same reason as CKV_AZURE_109
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource teamsWebhookSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(teamsWebhookUrl)) {
  // checkov:skip=CKV_AZURE_41: the webhook URL does not expire by itself; an expiry date here would silently end the Teams alerts
  // checkov:skip=CKV_AZURE_114: contentType is set below; checkov does not read the properties of a conditional resource
  parent: vault
  name: teamsWebhookSecretName
  properties: {
    value: teamsWebhookUrl
    contentType: 'text/uri-list'
  }
}

resource partnerCenterSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(partnerCenterClientSecret)) {
  // checkov:skip=CKV_AZURE_41: the secret's lifetime is set where it is issued (the app registration in Entra ID); rotate it there and here together
  // checkov:skip=CKV_AZURE_114: contentType is set below; checkov does not read the properties of a conditional resource
  parent: vault
  name: partnerCenterSecretName
  properties: {
    value: partnerCenterClientSecret
    contentType: 'text/plain'
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
// The references leave out the version, so a rotated secret is picked up (within 24 hours).
output teamsWebhookSecretUri string = empty(teamsWebhookUrl) ? '' : '${vault.properties.vaultUri}secrets/${teamsWebhookSecretName}'
output partnerCenterSecretUri string = empty(partnerCenterClientSecret) ? '' : '${vault.properties.vaultUri}secrets/${partnerCenterSecretName}'

// Work 365 usage-invoice diagnostics: the monitor's Azure resources, for `azd up` (azure.yaml).
// One resource group holding a Flex Consumption Function app with a user-assigned identity, its
// storage account, a Service Bus namespace with the app's queues, Application Insights on a Log
// Analytics workspace, a Key Vault for the two secrets an identity cannot replace, and the role
// assignments the identity needs. infra/README.md lists parameters, settings and roles.
//
// Local modules rather than Azure Verified Modules (br/public:avm/...): `make test` checks these
// templates offline (pycep-parser, checkov), and neither can read a registry module without
// downloading it, so with AVM the checks would not see the resources they check.

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment: part of every resource\'s name, and its azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Azure region of every resource; one where Flex Consumption is offered.')
param location string

@description('The resource group to create; empty: rg-<environmentName>.')
param resourceGroupName string = ''

@description('Object id of the deploying user or pipeline (azd passes yours): gets the data roles to run silences, read dead letters and rotate secrets. Empty: none.')
param principalId string = ''

@description('Kind of principalId.')
@allowed([
  'User'
  'ServicePrincipal'
])
param principalType string = 'User'

@description('The Dataverse environment, e.g. https://contoso.crm.dynamics.com (DIAG_DATAVERSE_URL).')
@minLength(1)
param dataverseUrl string

@description('''Most instances the Function app may scale to. At most 4: 4 instances x 8 concurrent
Dataverse requests each = 32 of the 52 Dataverse allows one user (README "Concurrency and
Dataverse's limits").''')
@minValue(1)
@maxValue(4)
param maximumInstanceCount int = 4

@description('NCRONTAB (six fields, UTC) of the daily plan (DIAG_SCHEDULE).')
param schedule string = '0 0 7 * * *'

@description('Table of the monitor\'s alert state (DIAG_STATE_TABLE).')
param stateTableName string = 'diagnostics'

@description('The Teams Workflows webhook URL the alerts are posted to; kept in Key Vault. Empty: no Teams posts.')
@secure()
param teamsWebhookUrl string = ''

@description('Partner Center app (optional; all three or none): its tenant id.')
param partnerCenterTenantId string = ''

@description('Partner Center app: its client id.')
param partnerCenterClientId string = ''

@description('Partner Center app: its client secret; kept in Key Vault.')
@secure()
param partnerCenterClientSecret string = ''

@description('More app settings, e.g. {"DIAG_PULL_WINDOW_DAYS": "15"}; the settings this template sets win.')
param additionalAppSettings object = {}

var tags = {
  'azd-env-name': environmentName
}
// Short, stable and unique per subscription, environment and region: global names need it.
var token = toLower(uniqueString(subscription().id, environmentName, location))
var functionAppName = 'func-${token}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}'

// The queues of diagnostics/queues.py (tests/infra/ checks they agree with function_app.py).
var queueNames = [
  'invoice-checks'
  'reference-resolution'
]

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${token}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    workspaceName: 'log-${token}'
    appInsightsName: 'appi-${token}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${token}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    stateTableName: stateTableName
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    name: 'sb-${token}'
    location: location
    tags: tags
    queueNames: queueNames
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${token}'
    location: location
    tags: tags
    teamsWebhookUrl: teamsWebhookUrl
    partnerCenterClientSecret: partnerCenterClientSecret
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    identityPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
    storageAccountName: storage.outputs.name
    serviceBusNamespaceName: serviceBus.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  // The roles first: the host reaches its storage, and the settings' Key Vault references resolve,
  // with the identity as soon as the app starts.
  dependsOn: [
    rbac
  ]
  params: {
    name: functionAppName
    planName: 'plan-${token}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsConnectionString: monitoring.outputs.connectionString
    serviceBusFullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
    maximumInstanceCount: maximumInstanceCount
    dataverseUrl: dataverseUrl
    schedule: schedule
    stateTableName: stateTableName
    teamsWebhookSecretUri: keyVault.outputs.teamsWebhookSecretUri
    partnerCenterTenantId: partnerCenterTenantId
    partnerCenterClientId: partnerCenterClientId
    partnerCenterSecretUri: keyVault.outputs.partnerCenterSecretUri
    additionalAppSettings: additionalAppSettings
  }
}

// azd reads these (AZURE_* names) after provisioning.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = subscription().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}'
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output SERVICE_BUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output KEY_VAULT_NAME string = keyVault.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName

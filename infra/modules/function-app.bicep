// The Function app on the Flex Consumption plan (Linux, Python 3.11) with the user-assigned
// identity, and every app setting the code reads in Azure (diagnostics/settings.py, function_app.py).
// tests/infra/ checks these settings against the settings model and the triggers' connections.

@description('Name of the Function app.')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Azure region.')
param location string

@description('Tags of every resource.')
param tags object

@description('Resource id of the user-assigned identity.')
param identityId string

@description('Client id of the user-assigned identity.')
param identityClientId string

@description('Name of the app\'s storage account (host storage and alert state).')
param storageAccountName string

@description('URL of the blob container the deployment package goes to.')
param deploymentContainerUrl string

@description('Application Insights connection string.')
param appInsightsConnectionString string

@description('<namespace>.servicebus.windows.net')
param serviceBusFullyQualifiedNamespace string

@description('''Most instances the plan may run. Dataverse refuses a user's 53rd concurrent request
and every instance signs in as the same application user: 4 instances x 1 worker process x
DIAG_DATAVERSE_MAX_CONCURRENCY (8) = 32 leaves 20 for people and other integrations
(README "Concurrency and Dataverse's limits").''')
@minValue(1)
@maxValue(4)
param maximumInstanceCount int

@description('Dataverse requests in flight per worker process (DIAG_DATAVERSE_MAX_CONCURRENCY); see maximumInstanceCount.')
@minValue(1)
@maxValue(8)
param dataverseMaxConcurrency int = 8

@description('The Dataverse environment, e.g. https://contoso.crm.dynamics.com (DIAG_DATAVERSE_URL).')
param dataverseUrl string

@description('NCRONTAB of the daily plan (DIAG_SCHEDULE, six fields, UTC).')
param schedule string

@description('Table of the alert state (DIAG_STATE_TABLE).')
param stateTableName string

@description('Key Vault secret URI of the Teams webhook URL; empty: no Teams posts.')
param teamsWebhookSecretUri string = ''

@description('Partner Center app\'s tenant id; empty: Partner Center not used.')
param partnerCenterTenantId string = ''

@description('Partner Center app\'s client id.')
param partnerCenterClientId string = ''

@description('Key Vault secret URI of the Partner Center app\'s secret.')
param partnerCenterSecretUri string = ''

@description('More app settings (e.g. DIAG_PULL_WINDOW_DAYS); the settings this template sets win.')
param additionalAppSettings object = {}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy on Flex Consumption is not offered in every region and needs always-ready instances; a day's checks missed in an outage are caught up by the next plan (its watermark)
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true // Linux
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: Partner Center's invoice-ready webhook and the runbook links in notes and Teams cards reach the app over the internet; every route but the runbook pages needs a function key
  // checkov:skip=CKV_AZURE_17: callers (Partner Center's webhook, people's browsers) cannot present client certificates; function keys authorize
  // checkov:skip=CKV_AZURE_212: the app scales to zero between the daily plan and its messages; Service Bus keeps the work while no instance runs
  // checkov:skip=CKV_AZURE_213: GET /api/health needs a function key (its answer names the services), so the platform's health probe cannot call it
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references resolve with the user-assigned identity (there is no system one).
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Flex Consumption takes the runtime from functionAppConfig: FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION must not be set (the platform refuses them).
var identitySettings = {
  // The host's storage (timer schedule, locks, keys) and the monitor's state table, by identity.
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  // The Service Bus triggers (connection DIAG_SERVICEBUS in function_app.py) and the publisher.
  DIAG_SERVICEBUS__fullyQualifiedNamespace: serviceBusFullyQualifiedNamespace
  DIAG_SERVICEBUS__credential: 'managedidentity'
  DIAG_SERVICEBUS__clientId: identityClientId
  // Telemetry signed in with the identity (local auth is off on the component).
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=${identityClientId}'
  // The Python worker sends the app's logs itself, with their fields as custom dimensions
  // (diagnostics/adapters/telemetry.py).
  PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
  // Any DefaultAzureCredential in the process picks the user-assigned identity.
  AZURE_CLIENT_ID: identityClientId
}

var monitorSettings = {
  DIAG_DATAVERSE_URL: dataverseUrl
  DIAG_DATAVERSE_CREDENTIAL: 'managed_identity'
  DIAG_DATAVERSE_CLIENT_ID: identityClientId
  DIAG_DATAVERSE_MAX_CONCURRENCY: string(dataverseMaxConcurrency)
  DIAG_SCHEDULE: schedule
  DIAG_STATE_TABLE: stateTableName
}

// Each optional setting only when given: an empty Key Vault reference would not resolve and stop
// the app; a half-configured Partner Center is reported by the app naming the missing setting.
var teamsSettings = empty(teamsWebhookSecretUri) ? {} : {
  DIAG_TEAMS_WEBHOOK_URL: '@Microsoft.KeyVault(SecretUri=${teamsWebhookSecretUri})'
}

var partnerCenterSettings = union(
  empty(partnerCenterTenantId) ? {} : { DIAG_PARTNER_CENTER_TENANT_ID: partnerCenterTenantId },
  empty(partnerCenterClientId) ? {} : { DIAG_PARTNER_CENTER_CLIENT_ID: partnerCenterClientId },
  empty(partnerCenterSecretUri) ? {} : {
    DIAG_PARTNER_CENTER_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${partnerCenterSecretUri})'
  }
)

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov reads these application settings as App Service site configuration:
  // checkov:skip=CKV_AZURE_13: App Service Authentication would put Entra sign-in in front of Partner Center's webhook and the public runbook pages; function keys authorize the other routes
  // checkov:skip=CKV_AZURE_63: App Service's HTTP logs do not exist on Flex Consumption; the host logs every request to Application Insights
  // checkov:skip=CKV_AZURE_65: same as CKV_AZURE_63, for detailed error pages
  // checkov:skip=CKV_AZURE_66: same as CKV_AZURE_63, for failed request tracing
  // checkov:skip=CKV_AZURE_80: a Python app, no .NET Framework
  // checkov:skip=CKV_AZURE_88: Flex Consumption runs from its deployment blob container, with no Azure Files share
  // checkov:skip=CKV_AZURE_222: these are the settings of the site above, which Partner Center's webhook must reach over the internet
  parent: site
  name: 'appsettings'
  properties: union(additionalAppSettings, identitySettings, monitorSettings, teamsSettings, partnerCenterSettings)
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName

// The Function app's own storage account: the Flex Consumption deployment package (a blob
// container), the host's blobs (timer schedule, locks, keys) and the monitor's alert state (a
// table). No account key is usable: every client signs in with the app's identity.

@description('Name of the storage account (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags of every resource.')
param tags object

@description('Blob container the deployment package is uploaded to.')
param deploymentContainerName string

@description('Table holding the monitor\'s alert state (DIAG_STATE_TABLE).')
param stateTableName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: the Flex Consumption app reaches its storage over the public endpoint; a deny-by-default firewall needs VNet integration and private endpoints, which this template does not create
  // checkov:skip=CKV_AZURE_59: same reason as CKV_AZURE_35; anonymous access is impossible anyway (no shared key, no public blobs)
  // checkov:skip=CKV_AZURE_206: the account holds a redeployable package, host bookkeeping and alert state that rebuilds itself; locally redundant storage is enough
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// Created here so the first message does not race to create it (the app would create it too).
resource stateTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: stateTableName
}

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output deploymentContainerUrl string = '${storage.properties.primaryEndpoints.blob}${deploymentContainer.name}'

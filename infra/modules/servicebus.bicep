// The Service Bus namespace and the monitor's queues (diagnostics/queues.py). Standard tier: the
// app schedules re-checks and relies on duplicate detection, which Basic lacks. Local (SAS key)
// authentication is off: the app signs in with its identity (DIAG_SERVICEBUS__credential).

@description('Name of the Service Bus namespace.')
param name string

@description('Azure region.')
param location string

@description('Tags of every resource.')
param tags object

@description('The queues the Function app\'s triggers and publisher use.')
param queueNames array

@description('''Duplicate detection window. A message id is `check:<unit>:<day>`,
`recheck:pi:<id>:<day>` or `refs:<invoice>:<day>` (diagnostics/messages.py): every repeat publish of
one id happens within about a day (a second plan, the Partner Center event, a re-delivered handler),
so two days cover it with margin; ids of different days never collide. Service Bus allows at most
seven days.''')
param duplicateDetectionWindow string = 'P2D'

@description('Deliveries before Service Bus dead-letters a message (MaxDeliveryCountExceeded): README "In Azure: the monitor".')
param maxDeliveryCount int = 10

@description('''Time to live of a message: longer than the 15-day usage-pull window the re-checks
follow (a scheduled re-check must never expire before it is due); an expired message is
dead-lettered, never dropped.''')
param messageTimeToLive string = 'P16D'

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource queues 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = [
  for queueName in queueNames: {
    parent: namespace
    name: queueName
    properties: {
      requiresDuplicateDetection: true
      duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
      maxDeliveryCount: maxDeliveryCount
      deadLetteringOnMessageExpiration: true
      defaultMessageTimeToLive: messageTimeToLive
      // The longest lock Service Bus grants; it outlasts DIAG_MESSAGE_DEADLINE_SECONDS (240 s by
      // default), so a message is settled before its lock lapses even without lock renewal.
      lockDuration: 'PT5M'
      requiresSession: false
      enablePartitioning: false
    }
  }
]

output name string = namespace.name
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'

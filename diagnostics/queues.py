"""The Service Bus queues of the monitor and the app setting their triggers connect with.

Plain constants, importable without the message models: `function_app` names them when the worker
indexes the functions, before any message arrives (`diagnostics.messages` re-exports them).
"""

QUEUE_INVOICE_CHECKS = "invoice-checks"
QUEUE_REFERENCE_RESOLUTION = "reference-resolution"
# The app setting (connection prefix) the Service Bus triggers and the publisher use. In Azure it is
# identity-based (`DIAG_SERVICEBUS__fullyQualifiedNamespace`); locally a connection string.
SERVICEBUS_CONNECTION = "DIAG_SERVICEBUS"

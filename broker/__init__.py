"""A local Service Bus broker (AMQP 1.0) and a local Functions host, for tests and the replay.

Not deployed (see .funcignore). `Broker` speaks enough of Service Bus for the real azure-servicebus
SDK to use it unchanged; `LocalFunctionsHost` (broker.functions_host) drives a FunctionApp's
triggers through it as the Azure Functions host would.
"""

from broker._broker import Broker, Clock
from broker.queues import DeadLetter, QueueOptions, QueueStats

__all__ = ["Broker", "Clock", "DeadLetter", "QueueOptions", "QueueStats"]

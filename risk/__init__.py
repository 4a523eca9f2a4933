"""The pure Cover-2 core: numpy and the standard library only.

Nothing here reads the environment, the clock, the network or Kafka: the shell
in ``streams`` decodes events, feeds them to :class:`risk.ccp.Ccp` in batches
and publishes the :class:`risk.snapshot.Snapshot` it returns.
"""

"""What the sensors and the triggers share about polling Prefinery, below both (neither is imported here).

* :mod:`.checks`: what "done" means for each sensor, one function per sensor, called by ``poke()`` and by
  the sensor trigger through the same hook.
* :mod:`.pacing`: the poll-interval rule and the 429 back-off.
* :mod:`.sensor_events`: the closed set of statuses a sensor trigger's event carries, and its validation.
* :mod:`.seen_ids`: a set of ids stored compactly (integer runs), for the event trigger's state.
"""

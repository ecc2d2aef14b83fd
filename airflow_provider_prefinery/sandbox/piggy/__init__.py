"""The Piggy (Leat) API v3 emulation (automations, runs, contacts, OAuth): ``routes``, ``handlers``,
``state`` and ``errors``, split as the other two APIs are."""

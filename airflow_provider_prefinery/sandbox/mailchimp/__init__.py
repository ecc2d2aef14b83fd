"""The Mailchimp Marketing API 3.0 emulation (audiences and their members): ``routes``, ``handlers``,
``state`` and ``errors``, split as the other two APIs are."""

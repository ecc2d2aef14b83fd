"""The Prefinery v2 emulation: ``routes`` (the table), ``handlers`` (parse, call state, render), ``state``
(the rules, over the shared database) and ``errors`` (its codes and its error shape)."""

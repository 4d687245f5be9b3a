"""``rhin calibrate`` and ``rhin simulate`` (issue 14): the live side of the SimPy model in
:mod:`simulator.des` — measuring the network (:mod:`.calibrate`), reporting (:mod:`.report`) and checking
predictions against ``rhin load`` runs (:mod:`.validate`). The typer commands are :mod:`.commands`."""

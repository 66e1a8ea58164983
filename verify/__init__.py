"""ntkode.verify: theory against simulation, reports and the `ntkode` command line."""

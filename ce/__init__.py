"""The composition root: the ``ce`` command, which knows the services, the province simulator,
their ports, how to run them all as processes, and the demo data. Nothing else imports it."""

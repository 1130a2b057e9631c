"""Development tools that tests and bench scripts share: loopback fakes of the outbound services
(fakes/) and known test identities (identities.py). Plain code, no pytest; it imports the
service's packages, never tests/."""

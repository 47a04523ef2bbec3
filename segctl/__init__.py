"""segctl: tenant isolation and microsegmentation controller for Open vSwitch."""

__version__ = "0.1.0"

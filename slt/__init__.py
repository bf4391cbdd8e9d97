"""SLT Studio engine: ASL video -> signer crop -> SignHiera -> SONAR ASL encoder -> SONAR text decoder -> text."""

__version__ = "0.1.0"

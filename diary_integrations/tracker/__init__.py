"""The tracker core: storage, rules and lifecycle. No web, torch or scikit-learn imports here."""

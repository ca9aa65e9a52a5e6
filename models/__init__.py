"""Typed event schemas for every topic, the traffic simulator and (later) detectors.

Models know nothing of Kafka clients: they describe what travels, not how.
"""

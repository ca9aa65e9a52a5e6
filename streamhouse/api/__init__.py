"""The order API (CQRS): HTTP commands to `order-commands`, the order read model from the lake."""

"""The outbound relay core: render, transmit and record each message of the outbox."""

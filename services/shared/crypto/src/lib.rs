//! AES-256-GCM envelope encryption with key ids (being written).

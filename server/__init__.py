"""The server's features: one blueprint per feature, registered by web.init_app."""

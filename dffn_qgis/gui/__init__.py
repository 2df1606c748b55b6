"""Desktop-only parts of the plugin: the endmember plot dock and the "Unmix with DFFN..." action."""

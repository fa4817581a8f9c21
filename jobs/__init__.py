"""Ray drivers: move keys, call the library, aggregate."""

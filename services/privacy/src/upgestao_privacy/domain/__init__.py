"""The privacy service's pure domain code: no nameko, eventlet, SQLAlchemy or other repository packages."""

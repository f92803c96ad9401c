"""The unit tier: pure parts of keel on real objects, no pipeline runs (`make test-fast`)."""

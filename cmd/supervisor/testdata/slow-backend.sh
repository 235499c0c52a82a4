#!/bin/sh
# slow-backend.sh PATH: an exec sync command that takes a minute per file.
exec sleep 60

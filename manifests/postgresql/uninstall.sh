#!/usr/bin/env bash
# Stops PostgreSQL; the data stays.
source "$(dirname "$0")/../_lib/common.sh"
service_down postgresql
finish

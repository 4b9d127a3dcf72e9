#!/usr/bin/env bash
source "$(dirname "$0")/../_lib/common.sh"
service_down caddy
finish

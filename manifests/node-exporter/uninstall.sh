#!/usr/bin/env bash
source "$(dirname "$0")/../_lib/common.sh"
service_down prometheus-node-exporter
finish

#!/usr/bin/env bash
# Stops Docker; images, containers and volumes stay.
source "$(dirname "$0")/../_lib/common.sh"
service_down docker
finish

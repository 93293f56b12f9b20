package capi

// ParseResponse exposes parseResponse to the external tests.
var ParseResponse = parseResponse

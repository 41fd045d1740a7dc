package clustergen

// Retryable exports retryable to the external tests.
var Retryable = retryable

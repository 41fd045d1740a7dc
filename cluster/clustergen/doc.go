// Package clustergen holds what the cluster proxies that proxygen
// generates need from package cluster and applications never call: the
// Balancer that sends each call of a FooClusterProxy to one member serving
// Foo, chooses that member by the proxy's policy and retries safely, and
// the interfaces through which it reaches the cluster (Cluster, Source)
// and package cluster reaches a proxy's balancer (Proxy).
//
// Package cluster implements Source and takes a Proxy in cluster.CallAll;
// applications use package cluster, the generated NewFooClusterProxy
// functions and the options of package cluster (cluster.ByKey,
// cluster.WithRetry, ...). This package depends on no other part of
// Trellis but the runtime and the node identifiers, so cluster imports it,
// never the reverse, as package runtime imports package runtime/codegen.
//
// The names here are a contract with proxygen and package cluster, not an
// API for users: they change with proxygen's output.
package clustergen

package transport

import (
	"crypto/tls"
	"net"
	"net/url"
	"strings"

	"github.com/trellisrpc/trellis/nodeid"
)

// tlsClient wraps nc in a TLS client. When cfg names no server, the host part
// of addr is used for verification.
func tlsClient(nc net.Conn, cfg *tls.Config, addr string) *tls.Conn {
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
	}
	return tls.Client(nc, cfg)
}

// peerCertID returns the node id named by the peer's certificate on a TLS
// connection whose chain was verified (see CertificateNodeID); None when
// nc is not TLS, the peer sent no certificate, or its chain was not
// verified (InsecureSkipVerify, a server that does not verify client
// certificates): such a certificate proves nothing.
func peerCertID(nc net.Conn) (nodeid.ID, error) {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return nodeid.None, nil
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return nodeid.None, nil
	}
	return CertificateNodeID(st.PeerCertificates[0])
}

// nodeURIScheme and nodeURIHost make the URI that names a node in a
// certificate: trellis://node/<id>.
const (
	nodeURIScheme = "trellis"
	nodeURIHost   = "node"
)

// NodeURI returns the URI that names node id in a certificate's subject
// alternative names: trellis://node/<id>, the id as nodeid.ID.String
// prints it. A connection whose peer presents a verified certificate naming
// a node is refused unless the peer's handshake claims that same id.
func NodeURI(id nodeid.ID) *url.URL {
	return &url.URL{Scheme: nodeURIScheme, Host: nodeURIHost, Path: "/" + id.String()}
}

// nodeIDFromURI returns the id a trellis://node/<id> URI names, ok false
// for a URI of another form.
func nodeIDFromURI(u *url.URL) (id nodeid.ID, ok bool, err error) {
	if u.Scheme != nodeURIScheme || u.Host != nodeURIHost {
		return nodeid.None, false, nil
	}
	id, err = nodeid.Parse(strings.TrimPrefix(u.Path, "/"))
	if err == nil && id == nodeid.None {
		err = errZeroCertID
	}
	return id, true, err
}

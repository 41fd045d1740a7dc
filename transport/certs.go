package transport

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
)

var errZeroCertID = errors.New("names the zero node id")

// CertificateNodeID returns the node id that cert names in a
// trellis://node/<id> URI subject alternative name (see NodeURI), or
// nodeid.None if it names none. A certificate that names a malformed id or
// more than one node is an error: it is refused.
func CertificateNodeID(cert *x509.Certificate) (nodeid.ID, error) {
	found := nodeid.None
	for _, u := range cert.URIs {
		id, ok, err := nodeIDFromURI(u)
		if !ok {
			continue
		}
		if err != nil {
			return nodeid.None, fmt.Errorf("URI %q: %w", u, err)
		}
		if found != nodeid.None && found != id {
			return nodeid.None, fmt.Errorf("names two nodes, %s and %s", found, id)
		}
		found = id
	}
	return found, nil
}

// NewCA returns a self-signed certificate authority, with a fresh ECDSA
// P-256 key, valid from an hour ago for validFor: for tests, and for a
// cluster that issues its own node certificates. Trust it with
// x509.CertPool.AddCert(ca.Leaf) in tls.Config.RootCAs and ClientCAs.
func NewCA(name string, validFor time.Duration) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: new CA: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	return issue(tmpl, nil, key, key, validFor)
}

// NewNodeCertificate returns a certificate for node id with a fresh ECDSA
// P-256 key, signed by ca (a certificate authority with its private key,
// NewCA's for instance), valid from an hour ago for validFor, usable by
// both servers and clients. It names the node with NodeURI(id), so the
// handshake binds the id to the certificate, and carries hosts (IP
// addresses or DNS names) as subject alternative names for the usual
// verification of the server's name.
func NewNodeCertificate(ca tls.Certificate, id nodeid.ID, validFor time.Duration, hosts ...string) (tls.Certificate, error) {
	if id == nodeid.None {
		return tls.Certificate{}, errors.New("transport: new node certificate: zero node id")
	}
	if len(ca.Certificate) == 0 || ca.PrivateKey == nil {
		return tls.Certificate{}, errors.New("transport: new node certificate: the CA has no certificate or no private key")
	}
	parent := ca.Leaf
	if parent == nil {
		var err error
		if parent, err = x509.ParseCertificate(ca.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("transport: new node certificate: parsing the CA: %w", err)
		}
	}
	signer, ok := ca.PrivateKey.(crypto.Signer)
	if !ok {
		return tls.Certificate{}, fmt.Errorf("transport: new node certificate: the CA's key (%T) cannot sign", ca.PrivateKey)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: new node certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "trellis node " + id.String()},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{NodeURI(id)},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return issue(tmpl, parent, signer, key, validFor)
}

// issue signs tmpl for key's public half with signer (self-signed when
// parent is nil) and returns it with key.
func issue(tmpl, parent *x509.Certificate, signer crypto.Signer, key *ecdsa.PrivateKey, validFor time.Duration) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: certificate serial: %w", err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(validFor)
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: signing certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: parsing certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

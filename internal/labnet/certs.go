package labnet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// certLifetime is how long the control plane's certificates are valid: far
// longer than any lab lives, short enough that a leaked one is worthless.
const certLifetime = 24 * time.Hour

// keyPair is a certificate and its private key.
type keyPair struct {
	cert    *x509.Certificate
	certDER []byte
	key     *ecdsa.PrivateKey
}

// certPEM is the certificate in PEM.
func (kp keyPair) certPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: kp.certDER})
}

// newCA makes a self-signed certificate authority.
func newCA(name string) (keyPair, error) {
	return newCert(name, nil, nil, keyPair{})
}

// newServingCert makes a TLS server certificate for the given names and
// addresses, signed by ca.
func newServingCert(ca keyPair, dnsNames []string, addrs []netip.Addr) (keyPair, error) {
	return newCert(dnsNames[0], dnsNames, addrs, ca)
}

// newCert makes a certificate signed by parent, or a self-signed CA if parent
// is the zero keyPair. Keys are ECDSA P-256: quick to generate, and accepted
// by every Kubernetes component.
func newCert(cn string, dnsNames []string, addrs []netip.Addr, parent keyPair) (keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return keyPair{}, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return keyPair{}, fmt.Errorf("serial number: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"ironlb lab"}},
		NotBefore:    now.Add(-time.Hour), // tolerate clock skew between processes
		NotAfter:     now.Add(certLifetime),
		DNSNames:     dnsNames,
	}
	for _, a := range addrs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.AsSlice()))
	}
	signer, signerCert := key, tmpl
	if parent.key == nil {
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		return keyPair{}, fmt.Errorf("create certificate %s: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return keyPair{}, fmt.Errorf("parse certificate %s: %w", cn, err)
	}
	return keyPair{cert: cert, certDER: der, key: key}, nil
}

// writeKey writes an ECDSA private key as PEM ("EC PRIVATE KEY"), readable
// only by its owner.
func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal key: %w", err)
	}
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

// writeFile writes data to path, creating its directory.
func writeFile(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, perm)
}

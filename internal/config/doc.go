// Package config turns every ironlb configuration object (IPPool,
// IPReservation, L2Announcement, BGPPeer, BGPAnnouncement, BFDProfile and
// the legacy MetalLB-style ConfigMap) into one immutable, validated *Config.
//
// Build is a pure function: no Kubernetes client, no I/O, no clock. The
// controller and the speakers both call it on the objects they watch and
// get the same answer. Validity is decided per object: an invalid object is
// left out whole and reported as a Problem naming the object and the field;
// if the previous Config held a valid version of that object, that version
// stays in force. Clashes between objects (two pools sharing an address, two
// definitions of one name) are blamed on the newer object, so adding a bad
// object never breaks one that already works. The legacy ConfigMap is one
// object: in force or not as a whole.
//
// A Config is never modified after Build returns it; callers may share it
// between goroutines without locking and must not change it.
package config

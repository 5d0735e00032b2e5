// Package controller is ironlb's IPAM controller: it reads the config
// objects into one config.Config, gives each LoadBalancer Service its
// addresses from the pools, and writes them, with the IPAllocated
// condition and events, to the Service. It never touches the network.
//
// # One owner of allocation state
//
// The ledger (ledger.go) owns everything the controller knows besides the
// API server: the Config in force, the ipam.Allocator, the request each
// Service's addresses were given for, the pending Services and what they
// wait for. It has its own lock, which no caller sees; its methods take
// and return values, and what a change asks of others (Services to wake,
// pool status to write) comes back as wakeups. Two reconcilers and a
// start-up step call it, each from its side, and nothing calls back up:
// reconcilers call the ledger, the ledger calls config and ipam.
//
// # A Service's address, step by step
//
// Start-up. State lives in the API server: the allocations are the
// Services' status.loadBalancer.ingress. Once the caches hold every
// config object and Service, the restorer (restore.go; leader only) orders
// the Services' claims on the addresses their status shows (claimRank,
// then age) and hands them to ledger.restore, which builds the Config,
// gives the allocator every claim it can honour, holds back the rest, and
// only then lets the reconcilers begin (ledger.waitRestored). A restart
// therefore changes no address.
//
// Config. An IPPool (or another config object, or the legacy ConfigMap)
// changes; the config controller's watch adds its single key, configKey,
// to its queue. configReconciler.Reconcile (configs.go) reads every
// config object (kube.ReadInput) and, when something config.Build reads
// has changed, hands them to ledger.setConfig, which builds the new Config
// from them and the one in force (config.Build keeps the last good version
// of an object that turned invalid), marks the pools being deleted
// (deletingPools) and gives the pools to the allocator. The reconciler
// then writes each object's Valid condition, adds every LoadBalancer
// Service to the service controller's queue so pending ones see the new
// pools, keeps the pool-protection finalizers, and writes the pools'
// address counts (ledger.poolUsage) to their status and metrics.
//
// Service. Services are not in controller-runtime's cache: a
// records.Store of svcRecord (svcstore.go), filled on every replica,
// keeps only what the controller reads, with the request already parsed
// (parseRequest). Each change to a record adds the Service's key to the
// service controller's queue (enqueueServices). serviceReconciler.Reconcile
// (services.go) reads the record and its namespace's labels and asks
// ledger.decide, which in one critical section keeps what the Service
// holds while its own request still fits it, or takes addresses from the
// pools it may use (decide.go), and holds back the addresses the
// Service's status shows but it gave up. The reconciler then patches the
// Service's status (statusPatch, status.go) with the addresses and the
// IPAllocated condition; once that is written, ledger.statusWritten lets
// the held-back addresses go. Last, it logs the decision and records an
// event where one explains something (report). A Service that is deleted,
// is no longer a LoadBalancer or is another class's goes to
// ledger.release instead.
//
// Reservations. An IPReservation is a config object: config.Build
// validates it, and ledger.install hands its addresses to the allocator,
// which keeps them from every Service it is not for
// (ipam.SetReservations). decide turns a reservation into the Service's
// request when the Service asks for no address itself (reservedFor,
// reservations.go), and leaves a Service what it held before, as for any
// config change. The config reconciler writes each reservation's Bound
// condition from who holds its addresses (reservationStates), when it
// writes pool usage.
//
// # Wake-ups
//
// Controllers are level-based: a wake-up is a key added to a work queue,
// meaning "look again". Each reconciler reaches the queues through
// workQueue (queue.go), which keeps a controller's queue from a raw
// source as the controller starts. When a decide, a written status or a
// release frees an address, the ledger names the pending Services that
// may take it (waitingFor) and the service reconciler adds them to its
// queue; a changed Config adds every LoadBalancer Service. The first
// change of pool usage since the config reconciler last read it adds
// configKey to the config queue after poolStatusInterval, so a burst of
// allocations costs one pool-status write every few seconds; a release
// while a pool is being deleted adds it at once, since that pool's
// finalizer may now come off.
package controller

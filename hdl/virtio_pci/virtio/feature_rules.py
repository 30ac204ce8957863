"""Feature-bit prerequisites (VIRTIO 1.3 chapter 6, 5.1.3.1 for virtio-net, 5.2.3 for virtio-blk).

One table per scope, used twice: ``VirtioPciParams`` refuses to *offer* a set that breaks a rule
(FEA-01: a clear ``ValueError`` naming the missing bit), and ``CommonCfg`` refuses FEATURES_OK
for a *driver* set that breaks one (FEA-02, DRV-11).  A rule is ``feature -> (needed, ...)``:
the feature needs every listed bit (``ALL``), or at least one of them (``ANY``).

virtio-blk (5.2.3) states no prerequisite between its device bits in VIRTIO 1.3, so its table
is empty: only the transport rules apply to it.
"""
from ..params import Feature

__all__ = ["TRANSPORT_REQUIRES", "DEVICE_REQUIRES_ALL", "DEVICE_REQUIRES_ANY", "rules_for",
           "missing_prerequisites"]

#: transport feature -> features it requires (VIRTIO 1.3 chapter 6)
TRANSPORT_REQUIRES = {
    Feature.NOTIF_CONFIG_DATA: (Feature.VERSION_1,),
    Feature.RING_RESET: (Feature.VERSION_1,),
    Feature.ADMIN_VQ: (Feature.VERSION_1,),
}

# virtio-net feature bits (VIRTIO 1.3 5.1.3)
NET_CSUM, NET_GUEST_CSUM = 0, 1
NET_GUEST_TSO4, NET_GUEST_TSO6, NET_GUEST_ECN, NET_GUEST_UFO = 7, 8, 9, 10
NET_HOST_TSO4, NET_HOST_TSO6, NET_HOST_ECN, NET_HOST_UFO = 11, 12, 13, 14
NET_CTRL_VQ, NET_CTRL_RX, NET_CTRL_VLAN, NET_CTRL_RX_EXTRA = 17, 18, 19, 20
NET_GUEST_ANNOUNCE, NET_MQ, NET_CTRL_MAC_ADDR = 21, 22, 23
NET_DEVICE_STATS, NET_VQ_NOTF_COAL, NET_NOTF_COAL = 50, 52, 53
NET_GUEST_USO4, NET_GUEST_USO6, NET_HOST_USO = 54, 55, 56
NET_RSS, NET_RSC_EXT = 60, 61

#: device type -> {feature: every one of these required} (5.1.3.1 "Feature bit requirements")
DEVICE_REQUIRES_ALL = {
    1: {
        NET_GUEST_TSO4: (NET_GUEST_CSUM,), NET_GUEST_TSO6: (NET_GUEST_CSUM,),
        NET_GUEST_UFO: (NET_GUEST_CSUM,), NET_GUEST_USO4: (NET_GUEST_CSUM,),
        NET_GUEST_USO6: (NET_GUEST_CSUM,),
        NET_HOST_TSO4: (NET_CSUM,), NET_HOST_TSO6: (NET_CSUM,), NET_HOST_UFO: (NET_CSUM,),
        NET_HOST_USO: (NET_CSUM,),
        NET_CTRL_RX: (NET_CTRL_VQ,), NET_CTRL_VLAN: (NET_CTRL_VQ,),
        NET_CTRL_RX_EXTRA: (NET_CTRL_VQ,), NET_GUEST_ANNOUNCE: (NET_CTRL_VQ,),
        NET_MQ: (NET_CTRL_VQ,), NET_CTRL_MAC_ADDR: (NET_CTRL_VQ,),
        NET_NOTF_COAL: (NET_CTRL_VQ,), NET_VQ_NOTF_COAL: (NET_CTRL_VQ,),
        NET_RSS: (NET_CTRL_VQ,), NET_DEVICE_STATS: (NET_CTRL_VQ,),
    },
    2: {},
}

#: device type -> {feature: at least one of these required} (5.1.3.1)
DEVICE_REQUIRES_ANY = {
    1: {
        NET_GUEST_ECN: (NET_GUEST_TSO4, NET_GUEST_TSO6),
        NET_HOST_ECN: (NET_HOST_TSO4, NET_HOST_TSO6),
        NET_RSC_EXT: (NET_HOST_TSO4, NET_HOST_TSO6),
    },
    2: {},
}


def rules_for(device_type):
    """(all-of rules, any-of rules) for a device type, transport rules included."""
    every = dict(TRANSPORT_REQUIRES)
    every.update(DEVICE_REQUIRES_ALL.get(device_type, {}))
    return every, dict(DEVICE_REQUIRES_ANY.get(device_type, {}))


def missing_prerequisites(device_type, features):
    """``[(feature, (needed, ...), "all" | "any")]`` for every rule ``features`` breaks."""
    every, anyof = rules_for(device_type)
    out = []
    for f, needs in every.items():
        if features >> f & 1 and not all(features >> n & 1 for n in needs):
            out.append((f, tuple(n for n in needs if not features >> n & 1), "all"))
    for f, needs in anyof.items():
        if features >> f & 1 and not any(features >> n & 1 for n in needs):
            out.append((f, needs, "any"))
    return out

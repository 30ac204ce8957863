#!/bin/sh
# init of the UML guest (`make linux`): root is the host's / on hostfs, read-only, so host
# binaries run here.  Prints what Linux saw as "VPCI <key> <value>" lines on the console, runs
# the scenario in $VPCI_SCENARIO, unbinds the PCI driver (power-off with a bound PCI driver
# hangs in 6.1) and powers off.  Shell built-ins where possible: every exec costs ~0.1 s in UML.
#
# The host's XSAVE area may not fit UML's FP buffer (sim/linux/kernel.py): keep glibc off AVX.
export GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX_Usable,-AVX2_Usable,-AVX512F_Usable,-AVX512VL_Usable,-AVX512BW_Usable,-AVX512DQ_Usable,-AVX_Fast_Unaligned_Load
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp

say() { echo "VPCI $*"; }
PCI=/sys/bus/pci/devices
DRV=/sys/bus/pci/drivers/virtio-pci
dev=
for d in $PCI/*; do
    read v < $d/vendor
    [ "$v" = 0x1af4 ] && dev=${d##*/}
done
say scenario "$VPCI_SCENARIO"
say device "$dev"

report() {      # $1: label of this snapshot
    l=$1
    D=$PCI/$dev
    if [ -z "$dev" ] || [ ! -e $D ]; then say $l.present 0; return; fi
    say $l.present 1
    for f in vendor device subsystem_vendor subsystem_device class revision irq; do
        read v < $D/$f; say $l.$f $v
    done
    [ -e $D/reset_method ] && { read v < $D/reset_method; say $l.reset_method $v; }
    n=0
    while read s e fl; do
        [ "$s" != 0x0000000000000000 ] && say $l.resource$n $s $e $fl
        n=$((n + 1))
    done < $D/resource
    say $l.config $(od -An -tx1 -v -N 256 $D/config)
    if [ -L $D/driver ]; then
        drv=$(readlink $D/driver); say $l.driver ${drv##*/}
    else
        say $l.driver none
    fi
    [ -d $D/msi_irqs ] && say $l.msi_irqs $(ls $D/msi_irqs)
    for v in $D/virtio*; do
        [ -d $v ] || continue
        say $l.virtio ${v##*/}
        read x < $v/device; say $l.virtio_device $x
        read x < $v/status; say $l.status $x
        read x < $v/features; say $l.features $x
        if [ -L $v/driver ]; then
            drv=$(readlink $v/driver); say $l.virtio_driver ${drv##*/}
        fi
        [ -d $v/net ] && for i in $v/net/*; do
            say $l.netdev ${i##*/}
            read x < $i/carrier 2>/dev/null && say $l.carrier $x
        done
        [ -d $v/block ] && for b in $v/block/*; do
            read x < $b/size; say $l.block ${b##*/} $x
        done
    done
    while read line; do
        case "$line" in *virtio*) say $l.interrupts $line ;; esac
    done < /proc/interrupts
}

unbind() { [ -L $PCI/$dev/driver ] && echo $dev > $DRV/unbind; }
bind() { echo $dev > $DRV/bind; }

report boot
case "$VPCI_SCENARIO" in
reset)
    unbind; report unbound
    bind; report rebound
    unbind
    if echo 1 > $PCI/$dev/reset; then say flr.write ok; else say flr.write failed; fi
    report flr
    bind; report reprobed
    ;;
up)
    # virtnet_open posts receive buffers and kicks: doorbells through the notify structure
    for n in /sys/class/net/eth*; do ip link set ${n##*/} up; done
    report up
    ;;
config)
    # the bridge changes the device configuration (link down) 2 s after the first doorbell;
    # wait for Linux to notice it through the interrupt (up to about 20 s)
    for n in /sys/class/net/eth*; do
        ip link set ${n##*/} up; read c < $n/carrier; say up.carrier_first $c
    done
    report up
    c=1
    for i in $(seq 1 200); do
        for n in /sys/class/net/eth*; do read c < $n/carrier 2>/dev/null; done
        [ "$c" = 0 ] && break
        sleep 0.1
    done
    report changed
    ;;
hwrng)
    # UML has its own hwrng (arch/um/drivers/random.c, "hw_random", the host's /dev/random) and
    # it stays current: select the virtio one (a later rng_quality write would re-pick the
    # best rng, which is UML's again: the first in the list at equal quality)
    H=/sys/class/misc/hw_random
    read x < $H/rng_available; say hwrng.available $x
    for r in $x; do
        case $r in virtio_rng.*) echo $r > $H/rng_current;; esac
    done
    read y < $H/rng_quality; say hwrng.quality $y
    read x < $H/rng_current; say hwrng.current $x
    head -c 4096 /dev/hwrng > /tmp/hwrng
    say hwrng.bytes $(wc -c < /tmp/hwrng)
    say hwrng.sample $(od -An -tx1 -v -N 16 /tmp/hwrng)
    say hwrng.md5 $(md5sum < /tmp/hwrng)
    od -An -tx1 -v -w128 /tmp/hwrng | while read l; do say hwrng.hex $l; done
    report after
    ;;
esac
unbind
say done
echo o > /proc/sysrq-trigger
sleep 10

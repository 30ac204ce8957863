"""The requester port: how a back-end asks the front-end for DMA (DESIGN.md section 4).

PCI Express Base Specification 5.0, 2.2.7 (memory requests), 2.3.1.1 (completions),
2.4.1 (ordering), 2.8 (completion timeout); requirement list section 2.18 (DMA-01..19).

This file is the contract between the front-end (``dma/requester.py``) and any back-end
(the split-virtqueue engine, a user's device).  Four streams, ``amaranth.lib.stream`` rules
(valid never depends on ready; payload held until accepted):

``dma_req`` (back-end -> front-end), one transfer per request (``DmaRequest``):
    ``write`` 1 = memory write, 0 = memory read; ``addr`` the 64-bit bus address of the first
    byte; ``len_m1`` the length in bytes minus one (1..65536 bytes, any alignment);
    ``relaxed`` / ``no_snoop`` ask for the Relaxed Ordering / No Snoop attributes, which are set
    only when Device Control enables them (DMA-18).

``dma_wdata`` (back-end -> front-end), the data of write requests (``DmaWriteBeat``):
    exactly ceil(length / (W/8)) beats per write request, in request order, ``last`` on the final
    beat.  Bytes are packed contiguously from bit 0: the byte at ``addr`` is bits 7:0 of the
    first beat, the byte at ``addr + k`` is bits 8k+7:8k of beat k // (W/8).  Bytes past the
    request's length in the last beat are ignored.  The front-end does all DW alignment.

``dma_rdata`` (front-end -> back-end), the data of read requests (``DmaReadBeat``):
    for every read request, in request order, exactly ceil(length / (W/8)) beats packed like
    ``dma_wdata`` (the byte at ``addr`` in bits 7:0 of the first beat), ``last`` on the final
    beat, and ``status`` (``DmaStatus``) valid on that final beat for the whole request.  When
    the status is not OK the data of the request is not to be trusted (the front-end hands
    zeros for every byte it did not receive good: poisoned or missing data is never passed on
    as data, DMA-11).

``dma_wdone`` (front-end -> back-end), one ``DmaStatus`` per write request, in request order:
    OK once every MWr of the request has been accepted by ``tx`` (from then on an interrupt
    requested on ``irq`` leaves after those writes: DMA-15), or the reason it was not sent.
"""
from amaranth.lib import data, enum, stream
from amaranth.hdl import unsigned

__all__ = ["DmaStatus", "DmaRequest", "DmaWriteBeat", "DmaReadBeat", "dma_signatures"]


class DmaStatus(enum.Enum, shape=3):
    """The end of one request, as the back-end sees it."""
    OK = 0          # every byte read / written
    UR = 1          # a completion said Unsupported Request (DMA-11)
    CA = 2          # a completion said Completer Abort (DMA-11)
    POISONED = 3    # a completion carried poisoned data (EP=1, DMA-11)
    TIMEOUT = 4     # a completion did not arrive in time (DMA-14)
    RESET = 5       # abandoned by an FLR or conventional reset (DMA-19)
    BME = 6         # refused: Bus Master Enable was clear, nothing was sent (DMA-01)
    MALFORMED = 7   # a completion was inconsistent with the request (DMA-13)


class DmaRequest(data.Struct):
    addr: 64
    len_m1: 16
    write: 1
    relaxed: 1
    no_snoop: 1


def DmaWriteBeat(width):
    return data.StructLayout({"data": unsigned(width), "last": 1})


def DmaReadBeat(width):
    return data.StructLayout({"data": unsigned(width), "last": 1, "status": DmaStatus})


def dma_signatures(width):
    """The four stream signatures, as seen from the back-end side's *source* point of view:
    ``{"dma_req": ..., "dma_wdata": ..., "dma_rdata": ..., "dma_wdone": ...}``."""
    return {
        "dma_req": stream.Signature(DmaRequest),
        "dma_wdata": stream.Signature(DmaWriteBeat(width)),
        "dma_rdata": stream.Signature(DmaReadBeat(width)),
        "dma_wdone": stream.Signature(DmaStatus),
    }

// RCU-protected containers built on the RCU module: RCUHashMap and RCUList.
@_exported import RCU

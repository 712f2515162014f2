// jemalloc's options for the agent, read once when jemalloc initializes
// (the MALLOC_CONF environment variable still adds to them). Linked only
// into executables that use jemalloc (EXECMON_JEMALLOC, agent/CMakeLists.txt).
//
// jemalloc keeps freed pages for reuse and returns them to the system as
// they "decay", which without a background thread happens only while the
// same arena allocates again. The agent frees most of what it allocated at
// start-up (BTF, the BPF objects, the policy parse) and then allocates
// little, so those pages stayed resident: about 12 MiB more than with the
// C library's malloc. A background thread returns unused pages within
// about a second (docs/build.md).
extern "C" {
// NOLINTNEXTLINE: the name and type are jemalloc's interface.
const char* malloc_conf =
    "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";
}

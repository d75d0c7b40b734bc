# xgrammar's C++ core (Apache-2.0; the grammar engine of vLLM, SGLang and TensorRT-LLM): constrained
# decoding (engine/grammar/). Built from its pinned PyPI sdist, the way the model is fetched: one
# download into ${PAGODA_CACHE:-~/.cache/pagoda}/downloads, checked against its sha256, reused by every
# build folder; PAGODA_XGRAMMAR_SOURCE_DIR points at an unpacked copy instead (no network).
# Only the library is built (not its Python bindings, nor its own -Werror flags): the sources under
# cpp/ minus cpp/tvm_ffi/ (the Python FFI), as its own CMakeLists.txt globs them.
set(PAGODA_XGRAMMAR_VERSION 0.2.8)
set(PAGODA_XGRAMMAR_URL
    "https://files.pythonhosted.org/packages/03/0f/29f521535729be740779c2c98b630ef6607cf28be9b669895dd2b821ff63/xgrammar-0.2.8.tar.gz")
set(PAGODA_XGRAMMAR_SHA256 8305646fd2b319d6c3003f51a1665e54cbbe9cba1fb636bc41d0b46434ccbb80)
set(PAGODA_XGRAMMAR_SOURCE_DIR "" CACHE PATH "An unpacked xgrammar-${PAGODA_XGRAMMAR_VERSION} sdist (empty: download it)")

if(PAGODA_XGRAMMAR_SOURCE_DIR)
  set(xgrammar_SOURCE_DIR "${PAGODA_XGRAMMAR_SOURCE_DIR}")
else()
  include(${CMAKE_CURRENT_LIST_DIR}/pagoda_downloads.cmake)
  include(FetchContent)
  FetchContent_Declare(xgrammar
    URL "${PAGODA_XGRAMMAR_URL}"
    URL_HASH SHA256=${PAGODA_XGRAMMAR_SHA256}
    DOWNLOAD_DIR "${PAGODA_DOWNLOAD_DIR}"
    DOWNLOAD_EXTRACT_TIMESTAMP TRUE)
  FetchContent_GetProperties(xgrammar)
  if(NOT xgrammar_POPULATED)
    message(STATUS "xgrammar ${PAGODA_XGRAMMAR_VERSION}: ${PAGODA_DOWNLOAD_DIR} (sha256 ${PAGODA_XGRAMMAR_SHA256})")
    FetchContent_Populate(xgrammar)
  endif()
endif()
if(NOT EXISTS "${xgrammar_SOURCE_DIR}/include/xgrammar/xgrammar.h")
  message(FATAL_ERROR "xgrammar sources not found in '${xgrammar_SOURCE_DIR}'")
endif()

file(GLOB_RECURSE PAGODA_XGRAMMAR_SOURCES CONFIGURE_DEPENDS "${xgrammar_SOURCE_DIR}/cpp/*.cc")
list(FILTER PAGODA_XGRAMMAR_SOURCES EXCLUDE REGEX "/cpp/tvm_ffi/.*\\.cc$")
add_library(xgrammar STATIC ${PAGODA_XGRAMMAR_SOURCES})
# Third-party code: its headers come in as SYSTEM, and its warnings are not ours to fix.
target_include_directories(xgrammar SYSTEM PUBLIC
  "${xgrammar_SOURCE_DIR}/include"
  "${xgrammar_SOURCE_DIR}/3rdparty/picojson"
  "${xgrammar_SOURCE_DIR}/3rdparty/dlpack/include")
target_compile_definitions(xgrammar PUBLIC XGRAMMAR_ENABLE_CPPTRACE=0)
include(${CMAKE_CURRENT_LIST_DIR}/third_party_options.cmake)
pagoda_third_party_options(xgrammar -O3 ON)
set_target_properties(xgrammar PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_link_libraries(xgrammar PUBLIC Threads::Threads)

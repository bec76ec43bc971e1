# Project-wide warning flags; PB_WERROR turns them into errors (CI does).
add_compile_options(-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                    -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough)
if(PB_WERROR)
  add_compile_options(-Werror)
endif()

# pb_add_gtest(NAME SOURCES... LIBS ...): a GoogleTest executable registered with CTest.
function(pb_add_gtest name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gtest_main Threads::Threads)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS "${ARG_LABELS}")
endfunction()

# GCC 12 reports impossible memcmp bounds inside libstdc++ at -O3:
# a false positive that breaks Release builds with -Werror.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  add_compile_options(-Wno-stringop-overread)
  # Same family: date/date.h's parser trips -Wmaybe-uninitialized once inlined at -O2.
  add_compile_options(-Wno-maybe-uninitialized)
  # And `"literal" + std::string&&` inlined at -O3 gives a bogus -Wrestrict (GCC bug 105329).
  add_compile_options(-Wno-restrict)
endif()

# SPDX-License-Identifier: Apache-2.0
# bpf_object(NAME SOURCE [SKELETON] [DEPENDS file...])
#
# Compiles SOURCE (a .bpf.c) against the build's vmlinux.h into ${BPF_OUT}/NAME.bpf.o, CO-RE
# with BTF, and with SKELETON also generates ${BPF_OUT}/NAME.skel.h (`bpftool gen skeleton`,
# struct NAME_bpf). Makes the target NAME_bpf_object, which has both; sets NAME_BPF_OBJECT
# to the object's path. Needs BPF_CLANG, BPFTOOL, BPF_ARCH, BPF_OUT and the bpf_vmlinux_h
# target.
function(bpf_object name source)
  cmake_parse_arguments(PARSE_ARGV 2 ARG "SKELETON" "" "DEPENDS")
  set(object ${BPF_OUT}/${name}.bpf.o)
  add_custom_command(
    OUTPUT ${object}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_${BPF_ARCH} -Wall -Werror
            -I${BPF_OUT} -I${PROJECT_SOURCE_DIR}/bpf -c ${source} -o ${object}
    DEPENDS ${source} ${ARG_DEPENDS} ${BPF_OUT}/vmlinux.h
    COMMENT "Compiling BPF object ${name}")
  set(outputs ${object})
  if(ARG_SKELETON)
    set(skeleton ${BPF_OUT}/${name}.skel.h)
    add_custom_command(
      OUTPUT ${skeleton}
      COMMAND ${BPFTOOL} gen skeleton ${object} name ${name}_bpf > ${skeleton}
      DEPENDS ${object}
      COMMENT "Generating BPF skeleton ${name}")
    list(APPEND outputs ${skeleton})
  endif()
  add_custom_target(${name}_bpf_object DEPENDS ${outputs})
  add_dependencies(${name}_bpf_object bpf_vmlinux_h)
  set(${name}_BPF_OBJECT ${object} PARENT_SCOPE)
endfunction()

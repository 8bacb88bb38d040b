define i32 @"add_one"(ptr noalias %"A", ptr noalias %"B")
{
entry:
  %".4" = add nsw i64 0, 2
  br label %"i_outer.header"
i_outer.header:
  %"i_outer" = phi  i64 [0, %"entry"], [%".17", %"i_outer.body"]
  %".6" = icmp slt i64 %"i_outer", %".4"
  br i1 %".6", label %"i_outer.body", label %"i_outer.exit"
i_outer.body:
  %".8" = mul nsw i64 %"i_outer", 8
  %".9" = add nsw i64 0, %".8"
  %".10" = mul nsw i64 %"i_outer", 8
  %".11" = add nsw i64 0, %".10"
  %".12" = getelementptr inbounds float, ptr %"A", i64 %".11"
  %".13" = load <8 x float>, ptr %".12", align 4
  %".14" = fadd contract <8 x float> %".13", <float 0x3ff0000000000000, float 0x3ff0000000000000, float 0x3ff0000000000000, float 0x3ff0000000000000, float 0x3ff0000000000000, float 0x3ff0000000000000, float 0x3ff0000000000000, float 0x3ff0000000000000>
  %".15" = getelementptr inbounds float, ptr %"B", i64 %".9"
  store <8 x float> %".14", ptr %".15", align 4
  %".17" = add nsw i64 %"i_outer", 1
  br label %"i_outer.header"
i_outer.exit:
  ret i32 0
}

define void @"add_one"(ptr noalias %"A", ptr noalias %"B")
{
entry:
  %".4" = add nsw i32 0, 2
  br label %"i_outer.header"
i_outer.header:
  %"i_outer" = phi  i32 [0, %"entry"], [%".19", %"i_outer.body"]
  %".6" = icmp slt i32 %"i_outer", %".4"
  br i1 %".6", label %"i_outer.body", label %"i_outer.exit"
i_outer.body:
  %".8" = mul nsw i32 %"i_outer", 8
  %".9" = add nsw i32 0, %".8"
  %".10" = mul nsw i32 %"i_outer", 8
  %".11" = add nsw i32 0, %".10"
  %".12" = sext i32 %".11" to i64
  %".13" = getelementptr inbounds float, ptr %"A", i64 %".12"
  %".14" = load <8 x float>, ptr %".13", align 4
  %".15" = fadd contract <8 x float> %".14", <float 0x3ff0000000000000, float 0x3ff0000000000000, float 0x3ff0000000000000, float 0x3ff0000000000000, float 0x3ff0000000000000, float 0x3ff0000000000000, float 0x3ff0000000000000, float 0x3ff0000000000000>
  %".16" = sext i32 %".9" to i64
  %".17" = getelementptr inbounds float, ptr %"B", i64 %".16"
  store <8 x float> %".15", ptr %".17", align 4
  %".19" = add nsw i32 %"i_outer", 1
  br label %"i_outer.header"
i_outer.exit:
  ret void
}

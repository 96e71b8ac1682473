print("ferryctl")
